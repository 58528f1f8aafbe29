"""`rsseg suggest`: where the next labels help most (uncertain and diverse chip-sized windows)."""
