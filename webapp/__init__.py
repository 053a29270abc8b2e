"""SRM Studio, the Streamlit app: the entry script (``streamlit_app.py``), its pages
(``app_pages/``) and the modules they share, imported as ``webapp.NAME``."""
