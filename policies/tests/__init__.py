"""The pack's own tests: they need only policies/requirements.txt and the contracts module (no aiinfra, no mocks)."""
