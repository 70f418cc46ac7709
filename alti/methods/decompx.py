"""DecompX (Modarressi et al., ACL 2023): a per-token decomposition carried through every layer,
FFN and classification head included (GUIDE §1.7)."""
