"""vb2po: Visma Business -> PowerOffice payment and credit-block sync."""
