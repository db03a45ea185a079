// UnrollData: see README.md for what this module owns.
