"""Public benchmarks: the papers' prepared dataset layouts (`rsseg prepare`), their published split lists and
their evaluation protocols."""
