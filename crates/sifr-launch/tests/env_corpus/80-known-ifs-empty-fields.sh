# Known brush difference (KNOWN.md): a non-whitespace IFS delimits empty fields.
p="/a:/b::/c"
IFS=:
set -- $p
export N_COLON=$#
