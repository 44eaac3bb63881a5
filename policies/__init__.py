"""The aiinfra CrossGuard policy pack; `policies.rules` is importable so the offline runner uses the same rules."""
