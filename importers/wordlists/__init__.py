"""Word lists the pseudonymiser reads: given names, surnames and towns (written for Concord), the
names that are also ordinary words per language, and words capitalised mid-sentence that are no names."""
