"""Plain PyTorch / numpy references: the executable spec every fast backend is tested against."""
