"""member-exchange: the notice exchange between the workplace and the residence side of party members."""
