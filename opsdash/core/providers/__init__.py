"""Payment provider specifics (request signing) shared by checks and webhook verification."""
