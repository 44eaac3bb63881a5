"""The model lifecycle: register compiled artifacts with lineage, gate their approval, compare variants, detect drift."""
