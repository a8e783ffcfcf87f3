# Plain exports, as most %environment sections are.
export LC_ALL=C
export PATH="/opt/tool/bin:$PATH"
export TOOL_HOME=/opt/tool
