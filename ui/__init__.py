"""Reusable NiceGUI components: the page frame and the widgets pages share. No database, no SDK here."""
