"""Small word lists the pseudonymiser reads: known names and words that are capitalised mid-sentence."""
