"""A page served to one local user: server, security (sessions, CSRF, headers), peer check, templates."""
