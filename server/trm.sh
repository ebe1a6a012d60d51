#!/usr/bin/env bash
# Same launcher as ../trm.sh (kept here too, where the original release had it). Edit the variables there,
# or set them in the environment: MODEL_PATH=/models/TRM-8B bash server/trm.sh
exec bash "$(dirname "$(readlink -f "$0")")/../trm.sh" "$@"
