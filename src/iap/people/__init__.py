"""People: the faces the analysis finds, grouped per owner into the people they show."""
