"""st-contrast: contrastive learning for NLP as sentence-transformers losses and fairseq plugins.

Importing this package is cheap: it never imports fairseq, and heavy optional pieces (nltk,
datasets) are imported only when the feature that needs them is used.
"""

from __future__ import annotations

__version__ = "0.1.0"
