"""Teaching: what each finding code means and how to confirm it by hand (`teaching.py`), the
vocabulary as a document (`vocabulary.py`), and a guided tour of one archive built on its
analysis (`tour.py`); `render.py` puts them on a terminal."""
