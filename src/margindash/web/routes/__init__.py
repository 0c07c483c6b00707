"""The dashboard's HTTP routes: parse the request, call one page builder, render."""
