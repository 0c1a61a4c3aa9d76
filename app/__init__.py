"""member-exchange: the Khối ↔ district notice exchange service."""
