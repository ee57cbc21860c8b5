"""The archive: bundles and their renderings, the viewer, custody, kept originals, integrity, the catalog."""
