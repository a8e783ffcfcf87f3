
cd /
. /scif/apps/foo/scif/env/01-base.sh

cd /scif/apps/foo
    touch installed


cd /
