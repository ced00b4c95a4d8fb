// Declarations only (see ../README.md): ProcessGroupGloo.hpp needs nothing from here.
#pragma once
