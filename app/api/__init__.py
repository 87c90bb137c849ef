"""The JSON API (/api/v1/): the UI's services for scripts and the `prodpanel` CLI, with personal API
tokens, problem+json errors and an OpenAPI document."""
