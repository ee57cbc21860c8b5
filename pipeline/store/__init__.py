"""The model store: records and routes, importers, and converters named by their direction."""
