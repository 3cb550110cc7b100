"""Click commands: parse arguments, call the API, render. No logic of their own."""
