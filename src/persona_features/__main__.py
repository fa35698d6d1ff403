"""``python -m persona_features``: the book's runner (``persona_features.book.runner``)."""

from persona_features.book.runner import main

raise SystemExit(main())
