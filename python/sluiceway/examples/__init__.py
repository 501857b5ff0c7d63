"""Example bots built on sluiceway; the property bot is what ``sluiceway demo`` runs."""
