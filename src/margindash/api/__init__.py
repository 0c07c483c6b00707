"""The HTTP API: thin routers over the services, schemas and auth dependencies."""
