"""Example projects served through crossgate; not part of the wheel."""
