"""Skills: functions saved from the sandbox, checked, versioned and reviewed before every session may import them.

* :mod:`.store`: the files (one module per version with a metadata header, states, atomic writes, a lock);
* :mod:`.validate`: the static checks against the stubs index (pure, ``ast`` only);
* :mod:`.service`: the loop itself (save, test, promote, reject, roll back, re-check), audited.
"""

from codemode.skills.service import Skills
from codemode.skills.store import Skill, SkillState, SkillStore, Version

__all__ = ["Skill", "SkillState", "SkillStore", "Skills", "Version"]
