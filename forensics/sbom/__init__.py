"""SBOMs the archive carries (attestations), held to the packages its layers hold."""
