"""Dashboard accounts: users with roles, argon2 password hashes, sessions, login throttling."""
