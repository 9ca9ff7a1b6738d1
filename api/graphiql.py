"""GraphiQL served entirely by the app, so that the IDE works on machines without internet access.

The pinned npm packages ship ready-made UMD and CSS files; ``install_assets`` fetches them once with npm
and keeps only those files, and the app serves them next to a small page of its own.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

ASSET_VERSIONS: dict[str, str] = {
    "graphiql": "3.8.3",
    "react": "18.2.0",
    "react-dom": "18.2.0",
    "@graphiql/plugin-explorer": "1.0.2",
}

# Served name -> path of the ready-made file inside node_modules.
ASSET_FILES: dict[str, str] = {
    "react.production.min.js": "react/umd/react.production.min.js",
    "react-dom.production.min.js": "react-dom/umd/react-dom.production.min.js",
    "graphiql.min.js": "graphiql/graphiql.min.js",
    "graphiql.min.css": "graphiql/graphiql.min.css",
    "plugin-explorer.umd.js": "@graphiql/plugin-explorer/dist/index.umd.js",
    "plugin-explorer.css": "@graphiql/plugin-explorer/dist/style.css",
}

ASSETS_URL = "/graphiql/assets"
INSTALL_COMMAND = "python -m api.graphiql"
_MARKER = "versions.json"
_CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
# Asset URLs carry the versions, so a browser may keep the files until the pins change.
_ASSET_CACHE = "public, max-age=31536000, immutable"
_CACHE_BUSTER = hashlib.sha256(json.dumps(ASSET_VERSIONS, sort_keys=True).encode()).hexdigest()[:12]


class AssetInstallError(RuntimeError):
    """The GraphiQL assets could not be installed (npm missing or failing)."""


def assets_dir() -> Path:
    """Kept in the working tree (git-ignored) so that one install serves every run of the app."""
    return Path(__file__).resolve().parent.parent / ".dropdesk-assets" / "graphiql"


def missing_assets(directory: Path | None = None) -> list[str]:
    """Names of the files that are absent, or all of them when they belong to other pinned versions."""
    directory = directory or assets_dir()
    try:
        installed = json.loads((directory / _MARKER).read_text())
    except (OSError, ValueError):
        installed = None
    if installed != ASSET_VERSIONS:
        return list(ASSET_FILES)
    return [name for name in ASSET_FILES if not (directory / name).is_file()]


def install_assets(force: bool = False) -> Path:
    """Installs the pinned packages with npm and keeps only the files the page loads; a no-op when done."""
    target = assets_dir()
    if not force and not missing_assets(target):
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise AssetInstallError(
            "npm was not found on PATH: install Node.js with npm, then run "
            f"`{INSTALL_COMMAND}` to fetch the GraphiQL assets."
        )
    packages = [f"{name}@{version}" for name, version in ASSET_VERSIONS.items()]
    with tempfile.TemporaryDirectory(prefix="dropdesk-graphiql-") as work:
        command = [npm, "install", "--no-audit", "--no-fund", "--legacy-peer-deps", "--prefix", work]
        result = subprocess.run(
            [*command, *packages], capture_output=True, text=True, timeout=900, check=False
        )
        if result.returncode != 0:
            raise AssetInstallError(
                f"npm install failed (exit {result.returncode}):\n{result.stderr.strip() or result.stdout}"
            )
        modules = Path(work) / "node_modules"
        target.mkdir(parents=True, exist_ok=True)
        (target / _MARKER).unlink(missing_ok=True)
        for name, source in ASSET_FILES.items():
            if not (modules / source).is_file():
                raise AssetInstallError(f"npm installed no {source}: the pinned packages changed shape")
            # Copy then rename, so that a running server never serves half a file.
            partial = target / f"{name}.partial"
            shutil.copyfile(modules / source, partial)
            os.replace(partial, target / name)
    (target / _MARKER).write_text(json.dumps(ASSET_VERSIONS, indent=2, sort_keys=True) + "\n")
    return target


async def serve_asset(request: Request) -> Response:
    """Serves only the known file names, so no path from the request ever reaches the file system."""
    name = request.path_params["name"]
    path = assets_dir() / name
    if name not in ASSET_FILES or not path.is_file():
        return PlainTextResponse("not found", status_code=404)
    return FileResponse(
        path,
        media_type=_CONTENT_TYPES[Path(name).suffix],
        headers={"Cache-Control": _ASSET_CACHE, "X-Content-Type-Options": "nosniff"},
    )


def graphiql_routes() -> list[BaseRoute]:
    return [Route(f"{ASSETS_URL}/{{name}}", serve_asset, methods=["GET"])]


def _asset_url(name: str) -> str:
    return f"{ASSETS_URL}/{name}?v={_CACHE_BUSTER}"


_DEFAULT_QUERY = """\
# Welcome to Dropdesk. Paste a token printed
# by `dropdesk serve` into the Token field above:
# the docs (book icon) and autocompletion load
# with it. Run a query with Ctrl+Enter.
{
  viewer {
    kind
    name
    scopes
    shop { name currencyCode }
    supplier { id name }
  }
}
"""

# Where the page keeps the token between visits: this browser's storage, never the URL.
TOKEN_STORAGE_KEY = "dropdesk.token"

_PAGE = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Dropdesk GraphiQL</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{graphiql_css}">
<link rel="stylesheet" href="{explorer_css}">
<style>
html, body, #root {{ height: 100%; margin: 0; }}
#root {{ display: flex; flex-direction: column; }}
#graphiql {{ flex: 1; min-height: 0; }}
.dropdesk-token {{ display: flex; gap: 8px; align-items: center; padding: 6px 12px;
  font: 14px system-ui, sans-serif; border-bottom: 1px solid #ddd; }}
.dropdesk-token input {{ flex: 0 1 28em; padding: 4px 6px; font: 13px monospace; }}
.dropdesk-token .status {{ color: #555; }}
.dropdesk-token .status.error {{ color: #b00020; }}
</style>
</head>
<body>
<div id="root">Loading GraphiQL&hellip;</div>
<script src="{react_js}"></script>
<script src="{react_dom_js}"></script>
<script src="{graphiql_js}"></script>
<script src="{explorer_js}"></script>
<script nonce="{nonce}">
(function () {{
  const config = {config};
  const h = React.createElement;
  const storage = {{
    get() {{ try {{ return localStorage.getItem(config.storageKey) || ""; }} catch (e) {{ return ""; }} }},
    set(value) {{
      try {{ value ? localStorage.setItem(config.storageKey, value) : localStorage.removeItem(config.storageKey); }}
      catch (e) {{ /* private mode: the token lasts until the page closes */ }}
    }},
  }};

  // Who the token acts for, or why it was refused (the server's own message).
  async function whoIs(token) {{
    const response = await fetch(config.endpoint, {{
      method: "POST",
      headers: {{ "Content-Type": "application/json", "Authorization": "Bearer " + token }},
      body: JSON.stringify({{ query: "{{ viewer {{ kind name shop {{ name }} supplier {{ name }} }} }}" }}),
    }});
    const body = await response.json().catch(() => ({{}}));
    if (!response.ok || !body.data) {{
      const message = body.errors && body.errors[0] ? body.errors[0].message : "HTTP " + response.status;
      return {{ error: message }};
    }}
    const viewer = body.data.viewer;
    const of = viewer.shop ? " of " + viewer.shop.name : viewer.supplier ? " for " + viewer.supplier.name : "";
    return {{ text: viewer.kind.toLowerCase() + " token \u201c" + viewer.name + "\u201d" + of }};
  }}

  function App() {{
    const [token, setToken] = React.useState(storage.get);
    const [draft, setDraft] = React.useState(token);
    const [status, setStatus] = React.useState({{ text: token ? "checking token\u2026" : "no token yet" }});
    // A new fetcher makes GraphiQL fetch the schema again, now with the token.
    const fetcher = React.useMemo(
      () => token
        ? GraphiQL.createFetcher({{
            url: config.endpoint,
            headers: {{ Authorization: "Bearer " + token }},
            // Subscriptions over graphql-transport-ws authenticate with connection_init's payload.
            subscriptionUrl: (location.protocol === "https:" ? "wss://" : "ws://") + location.host + config.endpoint,
            wsConnectionParams: {{ Authorization: "Bearer " + token }},
          }})
        : async () => ({{ errors: [{{ message: "No token yet: paste one into the Token field above." }}] }}),
      [token],
    );
    React.useEffect(() => {{
      if (!token) {{ setStatus({{ text: "no token yet" }}); return; }}
      let current = true;
      whoIs(token).then((result) => {{ if (current) setStatus(result); }},
                        () => {{ if (current) setStatus({{ error: "the server did not answer" }}); }});
      return () => {{ current = false; }};
    }}, [token]);
    const use = (event) => {{
      event.preventDefault();
      const value = draft.trim().replace(/^Bearer\\s+/i, "");
      storage.set(value);
      setToken(value);
    }};
    const forget = () => {{ storage.set(""); setDraft(""); setToken(""); }};
    // A bearer token pasted into the header editor works like one given in the field.
    const onEditHeaders = (text) => {{
      let headers;
      try {{ headers = JSON.parse(text); }} catch (e) {{ return; }}
      const name = headers && typeof headers === "object"
        ? Object.keys(headers).find((key) => key.toLowerCase() === "authorization") : undefined;
      const match = name && typeof headers[name] === "string" && headers[name].match(/^Bearer\\s+(\\S+)$/i);
      if (match && match[1] !== token) {{ storage.set(match[1]); setDraft(match[1]); setToken(match[1]); }}
    }};
    const bar = h("form", {{ className: "dropdesk-token", onSubmit: use }},
      h("label", {{ htmlFor: "dropdesk-token" }}, "Token"),
      h("input", {{
        id: "dropdesk-token", type: "password", autoComplete: "off", spellCheck: false,
        placeholder: "paste a token printed by dropdesk serve", value: draft,
        onChange: (event) => setDraft(event.target.value),
      }}),
      h("button", {{ type: "submit" }}, "Use token"),
      h("button", {{ type: "button", onClick: forget }}, "Forget"),
      h("span", {{ id: "dropdesk-token-status", className: "status" + (status.error ? " error" : "") }},
        status.error || status.text),
    );
    return h(React.Fragment, null, bar, h("div", {{ id: "graphiql" }}, h(GraphiQL, {{
      fetcher,
      plugins: [GraphiQLPluginExplorer.explorerPlugin()],
      defaultQuery: config.defaultQuery,
      headerEditorEnabled: true,
      onEditHeaders,
      inputValueDeprecation: true,
    }})));
  }}

  ReactDOM.createRoot(document.getElementById("root")).render(h(App));
}})();
</script>
</body>
</html>
"""

_MISSING_PAGE = """\
<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Dropdesk GraphiQL: assets missing</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto;">
<h1>GraphiQL is not installed yet</h1>
<p>The server serves GraphiQL from its own files, which have not been installed. On the server, run</p>
<pre>{command}</pre>
<p>(it needs Node.js with npm and access to the npm registry once), then reload this page.</p>
<p>Missing: {missing}</p>
<p>The GraphQL endpoint itself works: POST queries with <code>Authorization: Bearer &lt;token&gt;</code>.</p>
</body>
</html>
"""


def _content_security_policy(nonce: str) -> str:
    """Lets the page load nothing but the app's own files, so the IDE can never reach out to a CDN."""
    return (
        "default-src 'self'; "
        f"script-src 'self' 'nonce-{nonce}'; "
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )


def graphiql_page(endpoint: str = "/graphql") -> HTMLResponse:
    """The IDE page, or instructions for installing its assets when they are missing."""
    missing = missing_assets()
    if missing:
        body = _MISSING_PAGE.format(
            command=html.escape(INSTALL_COMMAND), missing=html.escape(", ".join(missing))
        )
        return HTMLResponse(body, status_code=503, headers={"Cache-Control": "no-store"})
    nonce = secrets.token_urlsafe(16)
    config = {
        "endpoint": endpoint,
        "defaultQuery": _DEFAULT_QUERY,
        "storageKey": TOKEN_STORAGE_KEY,
    }
    # "<" escaped so that no value can close the script element.
    config_js = json.dumps(config).replace("<", "\\u003c")
    body = _PAGE.format(
        nonce=nonce,
        config=config_js,
        graphiql_css=_asset_url("graphiql.min.css"),
        explorer_css=_asset_url("plugin-explorer.css"),
        react_js=_asset_url("react.production.min.js"),
        react_dom_js=_asset_url("react-dom.production.min.js"),
        graphiql_js=_asset_url("graphiql.min.js"),
        explorer_js=_asset_url("plugin-explorer.umd.js"),
    )
    return HTMLResponse(
        body,
        headers={"Cache-Control": "no-store", "Content-Security-Policy": _content_security_policy(nonce)},
    )


def main() -> int:
    try:
        path = install_assets(force="--force" in sys.argv[1:])
    except AssetInstallError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"GraphiQL assets ready in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
