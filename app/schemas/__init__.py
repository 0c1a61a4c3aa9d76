"""Request and response schemas of the API: what clients send and see, apart from the tables."""
