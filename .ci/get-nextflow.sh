#!/usr/bin/env bash
# Install the Nextflow runtime from Maven Central for the runtime tests (tests marked `nextflow`).
#
# Nextflow publishes its runtime to Maven Central as io.nextflow:nextflow; 24.10.0 is the newest
# release whose dependencies all resolve there (later ones need io.nextflow:nf-lang / nf-commons
# builds that Maven Central does not serve). Maven copies the released jars into
#   build/nextflow/lib/               (build/ is git-ignored)
# and this script writes build/nextflow/bin/nextflow, which starts Nextflow's own entry point
# (nextflow.cli.Launcher) on them with the JVM options Nextflow's launcher passes on Java 17+.
# Nothing is compiled. Needs: Java 17+, Maven, network access to Maven Central.
#
#   .ci/get-nextflow.sh            # no-op when build/nextflow/bin/nextflow already runs
#   .ci/get-nextflow.sh --force    # fetch again
#
# Plugins (nf-schema) are not on Maven Central: Nextflow downloads them from its plugin registry
# at the first run, or reads them from $NXF_HOME/plugins (docs/nextflow.md).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="24.10.0"
dest="$root/build/nextflow"
launcher="$dest/bin/nextflow"

if [ -x "$launcher" ] && [ "${1:-}" != "--force" ] && "$launcher" -version 2>/dev/null | grep -q "version $version"; then
    echo "nextflow: $launcher ($version) already present (use --force to fetch again)"
    exit 0
fi
for tool in java mvn; do
    command -v "$tool" >/dev/null || { echo "nextflow: '$tool' is not on PATH; the Nextflow runtime tests will skip" >&2; exit 1; }
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>fatescope.ci</groupId><artifactId>nextflow-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>io.nextflow</groupId><artifactId>nextflow</artifactId><version>$version</version></dependency>
  </dependencies>
</project>
EOF

echo "nextflow: io.nextflow:nextflow:$version and its runtime dependencies from Maven Central"
rm -rf "$dest"
mkdir -p "$dest/bin"
mvn -q -B -f "$tmp/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dest/lib"

cat > "$launcher" <<'EOF'
#!/usr/bin/env bash
# Nextflow from the jars in ../lib (installed by .ci/get-nextflow.sh), with the environment
# Nextflow's own launcher exports: NXF_HOME (without it Nextflow treats plugins in "dev" mode
# and will not install them), NXF_ORG, NXF_CLI.
home="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export NXF_HOME="${NXF_HOME:-$HOME/.nextflow}"
export NXF_ORG="${NXF_ORG:-nextflow-io}"
export NXF_CLI="$0 $*"
opens=""
for pkg in java.base/java.lang java.base/java.io java.base/java.nio java.base/java.net java.base/java.util \
           java.base/java.util.concurrent java.base/java.util.concurrent.locks java.base/java.util.regex \
           java.base/java.nio.file.spi java.base/sun.nio.ch java.base/sun.nio.fs java.base/sun.net.www.protocol.http \
           java.base/sun.net.www.protocol.https java.base/sun.net.www.protocol.ftp java.base/sun.net.www.protocol.file \
           java.base/jdk.internal.misc java.base/jdk.internal.vm java.rmi/sun.rmi.transport; do
    opens="$opens --add-opens=$pkg=ALL-UNNAMED"
done
# shellcheck disable=SC2086
exec java -XX:+IgnoreUnrecognizedVMOptions -Dfile.encoding=UTF-8 -Djava.awt.headless=true $opens ${NXF_OPTS:-} \
    -cp "$home/lib/*" nextflow.cli.Launcher "$@"
EOF
chmod +x "$launcher"
"$launcher" -version | grep -q "version $version" || { echo "nextflow: $launcher does not report version $version" >&2; exit 1; }
echo "nextflow: $launcher ($version) ready"
