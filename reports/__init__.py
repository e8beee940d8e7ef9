"""Report templates and assets, shipped inside the wheel (see forensics.render)."""
