"""st-contrast's fairseq plugins: pass this package's directory as fairseq's ``--user-dir``.

``st-contrast fairseq-user-dir`` prints the directory; ``st-contrast fairseq-train ...`` (and generate,
validate, interactive, preprocess) add it for you. Importing the package:

* registers, once, every criterion, task and model in its ``criterions/``, ``tasks/`` and ``models/``
  folders, among them the criterions ``label_smoothed_cross_entropy_with_contrastive`` (mCLR, Pan et al.,
  ACL 2021) and ``rdrop_label_smoothed_cross_entropy`` (R-Drop, Liang et al., NeurIPS 2021) and the task
  ``translation_multilingual_contrastive``. Importing it twice (e.g. imported by a script, then passed as
  ``--user-dir``, or found under a second module name) does not fail;
* imports every other module advertised in the entry-point group ``fairseq.plugins`` (a third-party
  package adds ``[project.entry-points."fairseq.plugins"] name = "my_package.fairseq"``); an import error
  there is re-raised, naming the entry point;
* makes ``torch.load`` default to ``weights_only=False`` in this process (environment variable
  ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``, inherited by the processes fairseq spawns) unless
  ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` or ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is already set: fairseq 0.12
  checkpoints pickle ``argparse.Namespace`` and omegaconf objects that torch >= 2.6's default
  ``weights_only=True`` refuses. Only load checkpoints you trust (as with any pickle);
* patches two fairseq 0.12 generation bugs (``_fairseq_fixes.py``): diverse beam search failed on every
  batch but the first (``--diverse-beam-groups``), and ``--no-repeat-ngram-size`` blocked nothing without
  the CUDA extension (it checked the padded end of the token buffer).

Imports between this package's modules are relative, and those of st_contrast absolute (public, non-CLI
names only): fairseq imports a ``--user-dir`` under its folder's name (``fairseq.utils.import_user_module``
puts the parent folder on ``sys.path`` and imports the basename), so a copy of this folder under another
name must find its own modules, not those of an installed ``fairseq_plugins``.
"""

from __future__ import annotations

import os

if "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ and "TORCH_FORCE_WEIGHTS_ONLY_LOAD" not in os.environ:
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"

from . import criterions, models, tasks  # noqa: E402,F401  (registration happens on import)
from ._entry_points import load_entry_point_plugins  # noqa: E402
from ._fairseq_fixes import apply_all as _apply_fairseq_fixes  # noqa: E402

_apply_fairseq_fixes()
load_entry_point_plugins()
