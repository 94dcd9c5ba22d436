"""Write the program `scripts/adoption-test` compiles for an adopted crate.

    adoption-program.py CRATE OUT_DIR MAIN_RS SPEC...

For each spec, it reads the module the generator wrote (OUT_DIR/<module>.rs) for what a user would
read in its docs: the logins, the protected operations (on `Authenticated`) and the public ones (on
`Client`) with their parameters. The program logs in with a declared flow and calls a protected
operation and a public one (one without parameters where there is one), and, for every operation,
makes the call from outside the module and checks that its future is `Send`. Prints a summary.
"""

import re
import sys
from pathlib import Path


def module_of(spec):
    return "api_" + re.sub(r"[^a-zA-Z0-9]", "_", Path(spec).stem).lower()


def block(code, start, end):
    """The text between two doc comments the generator writes."""
    i = code.index(start)
    j = code.index(end, i)
    return code[i:j]


def split_top_level(params):
    """Split a parameter list on the commas outside <>, () and []."""
    depth, part, parts = 0, "", []
    for ch in params:
        if ch in "<([":
            depth += 1
        elif ch in ">)]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(part)
            part = ""
        else:
            part += ch
    parts.append(part)
    return [p.strip() for p in parts if p.strip()]


def methods(text):
    """(name, arity, generic) for each `pub async fn` in text."""
    found = []
    for match in re.finditer(r"pub async fn (\w+)\s*(<[^(]*>)?\s*\(", text):
        name, generics = match.group(1), match.group(2) or ""
        depth, i = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        params = [p for p in split_top_level(text[match.end() : i - 1]) if not re.fullmatch(r"(&('\w+\s+)?(mut\s+)?)?self", p)]
        type_params = [g for g in split_top_level(generics[1:-1]) if not g.startswith("'")]
        found.append((name, len(params), len(type_params)))
    return found


def program_for(crate, out_dir, spec):
    module = module_of(spec)
    code = (Path(out_dir) / f"{module}.rs").read_text()
    protected = methods(block(code, "/// Every operation of the API.", "/// The operations the spec makes public"))
    public = methods(block(code, "/// The operations the spec makes public", "/// The OAuth scopes each operation"))
    logins = [
        m
        for m in ("login_client_credentials", "login_password", "login_authorization_code_loopback", "login_device")
        if f"pub async fn {m}<" in code
    ]

    def closure(receiver, name, arity, type_params):
        args = ", ".join(f"a{i}" for i in range(arity))
        # A body given by value (`B: Into<reqwest::Body>`): a Vec<u8> here; a stream has the same
        # future type.
        turbofish = f"::<{', '.join(['Vec<u8>'] * type_params)}>" if type_params else ""
        return f"    let _ = |{args}| assert_send({receiver}.{name}{turbofish}({args}));"

    checks = [closure("api", n, a, g) for n, a, g in protected]
    checks += [closure("client", n, a, g) for n, a, g in public]
    generic = [n for n, _, g in protected if g]
    public_names = {n for n, _, _ in public}
    protected = [(n, a, g) for n, a, g in protected if n not in public_names]

    steps = [f'    let client = {module}::Client::builder(base_url, "adoption-test").build()?;']
    said = []
    call_public = next((n for n, a, g in public if a == 0 and not g), None)
    if call_public:
        steps.append(f'    println!("{call_public}: {{}}", client.clone().{call_public}().await.is_ok());')
        said.append(f"public {call_public}")
    if logins:
        steps.append("    let spare = client.clone();")
        login = logins[0]
        if login == "login_password":
            steps.append('    let api = client.login_password(MemoryStore::new(), "ada", "secret".into()).await?;')
        elif login == "login_client_credentials":
            steps.append("    let api = client.login_client_credentials(MemoryStore::new(), &[]).await?;")
        elif login == "login_authorization_code_loopback":
            steps.append(
                '    let api = client.login_authorization_code_loopback(MemoryStore::new(), &[], |url| println!("open {url}")).await?;'
            )
        else:
            steps.append("    let device = client.device_authorization(&[]).await?;")
            steps.append('    println!("enter {} at {}", device.user_code(), device.verification_uri());')
            steps.append("    let api = client.login_device(MemoryStore::new(), &device).await?;")
        said.insert(0, f"login {login.removeprefix('login_')}")
        call = next((n for n, a, g in protected if a == 0 and not g), None)
        if call:
            steps.append(f'    println!("{call}: {{}}", api.{call}().await.is_ok());')
            said.append(f"protected {call}")
        elif protected:
            said.append("protected operations all take parameters: compiled, not called")
        steps.append(f"    every_operation_of_{module}(&api, &spare);")
        steps.append("    api.logout().await?;")
        auth_param = f"api: &{module}::Authenticated<MemoryStore>, "
    else:
        # No flow to log in with (or one the SDK has no login for): a stored session still gives
        # an `Authenticated`, whose operations are checked the same.
        said.insert(0, "no login declared: resume")
        steps.append("    let spare = client.clone();")
        steps.append("    let api = client.resume(MemoryStore::new()).await?;")
        steps.append(f"    every_operation_of_{module}(&api, &spare);")
        auth_param = f"api: &{module}::Authenticated<MemoryStore>, "
    said.append(f"calls Send: {len(checks)}" + (f" ({len(generic)} with a body given by value)" if generic else ""))

    text = f"""
/// Every operation of `{module}`, called from outside the module; each future must be `Send`.
#[allow(unused_variables, clippy::redundant_closure)]
fn every_operation_of_{module}({auth_param}client: &{module}::Client) {{
{chr(10).join(checks)}
}}

async fn use_{module}(base_url: String) -> Result<(), Box<dyn std::error::Error>> {{
{chr(10).join(steps)}
    Ok(())
}}
"""
    return module, text, "; ".join(said)


def main():
    crate, out_dir, main_rs, *specs = sys.argv[1:]
    crate_ident = crate.replace("-", "_")
    parts = [program_for(crate, out_dir, spec) for spec in specs]
    modules = ", ".join(m for m, _, _ in parts)
    calls = "\n".join(f"    use_{m}(base_url.clone()).await?;" for m, _, _ in parts)
    Path(main_rs).write_text(
        f"""//! Written by scripts/adoption-test from the generated module{"s" if len(parts) > 1 else ""}: what a user of
//! this crate would write after reading its docs.
use {crate_ident}::{{{modules}}};
#[allow(unused_imports)]
use oauth_sdk_runtime::MemoryStore;

fn assert_send<T: Send>(future: T) -> T {{
    future
}}
{"".join(text for _, text, _ in parts)}
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {{
    let base_url = std::env::args().nth(1).unwrap_or_else(|| "http://127.0.0.1:9".to_owned());
{calls}
    Ok(())
}}
"""
    )
    print(" | ".join(said for _, _, said in parts))


main()
