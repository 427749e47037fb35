"""Schedule and webhook triggers (SPEC §9)."""
