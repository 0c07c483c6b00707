"""`margindash users …`: dashboard accounts from the command line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from margindash.config import get_settings
from margindash.db.engine import make_engine
from margindash.db.migrate import upgrade
from margindash.orgs.service import Org, find_org
from margindash.users.accounts import (
    MIN_PASSWORD_LENGTH,
    ROLES,
    UserExists,
    create_user,
    find_user,
    generate_password,
    list_users,
    normalise_email,
    set_password,
)

DEFAULT_ADMIN_EMAIL = "admin@localhost"
DEMO_EMAIL = "demo@example.com"

users_app = typer.Typer(
    help="Dashboard users (log in at the server's address).", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)


@dataclass(frozen=True, slots=True)
class Login:
    """A dashboard login to print; `password` is None when the caller chose it."""

    email: str
    role: str
    password: str | None


def add_login(
    engine: Engine, *, org: Org, email: str | None, password: str | None, role: str
) -> Login:
    """Create a user, generating a password (returned once) when none is given."""
    chosen = password or generate_password()
    user = create_user(
        engine, org_id=org.id, email=email or DEFAULT_ADMIN_EMAIL, password=chosen, role=role
    )
    return Login(user.email, user.role, None if password else chosen)


def check_new_login(engine: Engine, *, email: str | None, password: str | None) -> None:
    """ValueError when `add_login` would refuse these, so nothing is created half-way."""
    address = normalise_email(email or DEFAULT_ADMIN_EMAIL)
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    if find_user(engine, email=address) is not None:
        raise UserExists(
            f"a dashboard user {address} already exists; choose another with --admin-email"
        )


def demo_login(engine: Engine, *, org: Org) -> Login:
    """The demo's dashboard admin, with a fresh password each time the demo runs."""
    email = DEMO_EMAIL
    existing = find_user(engine, email=email)
    if existing is not None and existing.org_id != org.id:  # demo loaded into another org
        email = f"demo+{org.id}@example.com"
        existing = find_user(engine, email=email)
    if existing is None:
        return add_login(engine, org=org, email=email, password=None, role="admin")
    password = generate_password()
    set_password(engine, email=email, password=password)
    return Login(existing.email, existing.role, password)


def describe_login(login: Login, url: str) -> list[str]:
    """Lines telling a person where and how to log in to the dashboard."""
    lines = [f"Dashboard: {url}  (log in as [bold]{login.email}[/bold], {login.role})"]
    if login.password:
        lines.append(f"Password:  [bold]{login.password}[/bold]   (shown once; store it now)")
    return lines


def _engine() -> Engine:
    engine = make_engine(get_settings().database_url)
    upgrade(engine)
    return engine


def _org(engine: Engine, name: str | None) -> Org:
    org = find_org(engine, name)
    if org is None:
        err.print("[red]No such org.[/red] Create one with `margindash init --org NAME`.")
        raise typer.Exit(1)
    return org


OrgOption = Annotated[
    str | None, typer.Option("--org", help="Org name or id (default: the first org).")
]


@users_app.command("add")
def users_add(
    email: Annotated[str, typer.Option("--email", help="The user's e-mail (their login).")],
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")] = "viewer",
    password: Annotated[
        str | None, typer.Option(help="At least 10 characters (default: generate one).")
    ] = None,
    org: OrgOption = None,
) -> None:
    """Add a dashboard user; prints a generated password once when none is given."""
    engine = _engine()
    target = _org(engine, org)
    try:
        login = add_login(engine, org=target, email=email, password=password, role=role)
    except (UserExists, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    for line in describe_login(login, get_settings().dashboard_url + "/"):
        console.print(line)


@users_app.command("list")
def users_list(org: OrgOption = None) -> None:
    """List the org's dashboard users."""
    engine = _engine()
    target = _org(engine, org)
    table = Table(title=f"Dashboard users of {target.name}")
    for column in ("email", "role", "created", "last login"):
        table.add_column(column)
    for user in list_users(engine, org_id=target.id):
        last = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "never"
        table.add_row(user.email, user.role, user.created_at.strftime("%Y-%m-%d"), last)
    console.print(table)


@users_app.command("set-password")
def users_set_password(
    email: Annotated[str, typer.Option("--email", help="The user's e-mail.")],
    password: Annotated[
        str | None, typer.Option(help="At least 10 characters (default: generate one).")
    ] = None,
) -> None:
    """Replace a user's password, ending their sessions (prints it once when generated)."""
    engine = _engine()
    chosen = password or generate_password()
    try:
        found = set_password(engine, email=email, password=chosen)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if not found:
        err.print(f"[red]No user with e-mail {email}.[/red]")
        raise typer.Exit(1)
    console.print(f"Password of {email} changed; their sessions were ended.")
    if password is None:
        console.print(f"Password:  [bold]{chosen}[/bold]   (shown once)")
