"""Qt parts of the dock widget (Qt and magicgui live only here and in ``_widget``)."""
