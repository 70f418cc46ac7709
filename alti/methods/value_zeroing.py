"""Value Zeroing (Mohebbi et al., EACL 2023): how much each layer's output moves when one
token's value vectors are zeroed (GUIDE §1.7)."""
