"""Local stand-ins for the services the bot talks to, for end-to-end tests and the sandbox."""
