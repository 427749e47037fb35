"""The activity catalogue the designer and `GET /api/activities` serve: names, categories, JSON Schemas."""
