"""The seed experiment: four models, one data path, the seed's claims decided by measurement."""
