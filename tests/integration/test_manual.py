"""The manual page, man/baa.8, against what it describes: mandoc finds no
fault in it, its ENVIRONMENT lists CONFIG_VARIABLES of src/config.h (each
with its default and the commands that read it), its COMMANDS what
`baa --help` lists, and its ENDPOINTS the table of src/routes.c. A new
variable, command or route without a line in the page fails here."""

import os
import re
import shutil
import subprocess
import unittest

from harness import REPO, clean_env, read_text, require_baa

PAGE = os.path.join(REPO, "man", "baa.8")

# Not config.h's table: read by libcurl itself (only serve calls Spotify),
# and set by systemd (serve's log lines then carry their priority; serve
# tells it when it is ready).
# CREDENTIALS_DIRECTORY, set by systemd too, is where every command may find
# the secrets.
OUTSIDE_VARIABLES = {
    "HTTPS_PROXY": {"serve"},
    "NO_PROXY": {"serve"},
    "JOURNAL_STREAM": {"serve"},
    "NOTIFY_SOCKET": {"serve"},
    "CREDENTIALS_DIRECTORY": {"serve", "resetdb", "migrate", "rotate-keys"},
}


def credential_names():
    """The variables config.c lets a systemd credential set."""
    text = read_text(os.path.join(REPO, "src", "config.c"))
    table = text[text.index("credential_names[] = {"):]
    return re.findall(r'"(\w+)"', table[:table.index("};")])


def parse_mdoc(text):
    """{section name: [(.It head, [body lines])]}, for the items of the
    lists directly under each .Sh (nested lists stay in their item's body).
    Comment lines are dropped."""
    sections = {}
    items = None
    depth = 0
    for line in text.splitlines():
        if line.startswith(('.\\"', "'\\\"")):
            continue
        macro = line.split(None, 1)
        name = macro[0] if macro else ""
        rest = macro[1].strip() if len(macro) > 1 else ""
        if name == ".Sh":
            items = sections.setdefault(rest.strip('"'), [])
            depth = 0
            continue
        if items is None:
            continue
        if name == ".Bl":
            depth += 1
            if depth == 1:
                continue
        elif name == ".El":
            depth -= 1
            if depth == 0:
                continue
        elif name == ".It" and depth == 1:
            items.append((rest, []))
            continue
        if depth >= 1 and items:
            items[-1][1].append(line)
    return sections


def item_heads(items, macro):
    """The heads of items that start with macro (".It Ev NAME" -> "NAME")."""
    out = []
    for head, _ in items:
        parts = head.split(None, 1)
        if parts and parts[0] == macro:
            out.append(parts[1].strip('"') if len(parts) > 1 else "")
    return out


def config_variables():
    """[(NAME, scope expression, default or None)] of CONFIG_VARIABLES, in order."""
    text = read_text(os.path.join(REPO, "src", "config.h"))
    table = text[text.index("#define CONFIG_VARIABLES(X)"):]
    table = table[:table.index("\nstruct config")]
    table = table.replace("\\\n", " ")
    out = []
    for m in re.finditer(r'X\((\w+),\s*\w+,\s*[^,]+,\s*([\w\s|]+?),\s*(NULL|"[^"]*")\s*,', table):
        default = None if m.group(3) == "NULL" else m.group(3)[1:-1]
        out.append((m.group(1), set(re.split(r"\s*\|\s*", m.group(2).strip())), default))
    return out


def command_scopes():
    """{command: set of CONFIG_* scopes it loads}, from each cmd_NAME of src/main.c."""
    text = read_text(os.path.join(REPO, "src", "main.c"))
    out = {}
    for m in re.finditer(r"^cmd_(\w+)\(void\)\n\{(.*?)^\}", text, re.M | re.S):
        load = re.search(r"load_config\(&cfg,\s*([^)]*)\)", m.group(2))
        if load:
            out[m.group(1).replace("_", "-")] = set(re.split(r"\s*\|\s*", load.group(1).strip()))
    return out


def routes():
    """["METHOD /path"] of src/routes.c, a '*' segment written {id}."""
    text = read_text(os.path.join(REPO, "src", "routes.c"))
    return ["%s %s" % (m.group(1), m.group(2).replace("*", "{id}"))
            for m in re.finditer(r'\{HTTP_(GET|POST|DELETE), "([^"]+)"', text)]


def help_entries(usage, heading):
    """The names in the first column of a `baa --help` block ("commands:")."""
    names, inside = [], False
    for line in usage.splitlines():
        if line == heading:
            inside = True
        elif inside and not line.strip():
            break
        elif inside:
            m = re.match(r"  (\S+)", line)
            if m:
                names.append(m.group(1))
    return names


def cm_words(line):
    """The words of a `.Cm a , b ;` line, without the macro and punctuation."""
    return [w for w in line.split()[1:] if not re.fullmatch(r"[,;.:()]", w)]


class ManualPageTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.text = read_text(PAGE)
        if not cls.text:
            raise AssertionError("%s is missing" % PAGE)
        cls.sections = parse_mdoc(cls.text)

    def section(self, name):
        self.assertIn(name, self.sections, "man/baa.8 has no .Sh %s" % name)
        return self.sections[name]

    def environment_items(self):
        return {head.split(None, 1)[1]: body for head, body in self.section("ENVIRONMENT")
                if head.startswith("Ev ")}

    def test_mandoc_lint_finds_nothing(self):
        if shutil.which("mandoc") is None:
            raise AssertionError("mandoc not found (apt-get install mandoc; scripts/setup-debian does)")
        res = subprocess.run(["mandoc", "-Tlint", "-W", "warning", PAGE],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual((res.returncode, res.stdout + res.stderr), (0, ""),
                         "mandoc -Tlint -W warning man/baa.8")

    def test_environment_lists_every_config_variable_in_order_and_the_outside_ones(self):
        expected = [name for name, _, _ in config_variables()]
        self.assertGreater(len(expected), 30, "CONFIG_VARIABLES not parsed from src/config.h")
        expected += list(OUTSIDE_VARIABLES)
        listed = item_heads(self.section("ENVIRONMENT"), "Ev")
        missing = [n for n in expected if n not in listed]
        extra = [n for n in listed if n not in expected]
        self.assertEqual((missing, extra), ([], []),
                         "ENVIRONMENT of man/baa.8: (missing, extra) against src/config.h")
        self.assertEqual(listed, expected, "ENVIRONMENT must follow CONFIG_VARIABLES' order")

    def test_each_variable_states_its_default_as_config_h_spells_it(self):
        items = self.environment_items()
        for name, _, default in config_variables():
            with self.subTest(variable=name, default=default):
                if name not in items:
                    self.fail("ENVIRONMENT has no .It Ev %s" % name)
                text = " ".join(items[name])
                if default is None:
                    self.assertRegex(text, r"\brequired\b", "a variable without default is required")
                elif default == "":
                    self.assertRegex(text, r"\bunset\b", "an optional variable without default")
                else:
                    self.assertRegex(text, r"(?<![\w.:/])%s(?![\w:/])" % re.escape(default),
                                     "the default of %s in src/config.h" % name)

    def test_each_variable_names_the_commands_that_read_it(self):
        scopes = command_scopes()
        self.assertEqual(sorted(scopes), ["migrate", "resetdb", "rotate-keys", "serve"],
                         "the commands' load_config scopes in src/main.c")
        items = self.environment_items()
        expected = {name: {c for c, loaded in scopes.items() if scope & loaded}
                    for name, scope, _ in config_variables()}
        expected.update(OUTSIDE_VARIABLES)
        for name, commands in expected.items():
            with self.subTest(variable=name):
                if name not in items:
                    self.fail("ENVIRONMENT has no .It Ev %s" % name)
                first = items[name][0] if items[name] else ""
                self.assertTrue(first.startswith(".Cm "), "an item starts with .Cm COMMAND , ... ;")
                self.assertEqual(set(cm_words(first)), commands)

    def test_credentials_directory_names_every_secret_config_c_reads_from_it(self):
        names = credential_names()
        self.assertIn("POSTGRES_PW", names)
        body = self.environment_items()["CREDENTIALS_DIRECTORY"]
        listed = [line.split()[1] for line in body if line.startswith(".Ev ")]
        self.assertEqual(listed, names)

    def test_commands_are_those_of_baa_help(self):
        res = subprocess.run([require_baa(), "--help"], env=clean_env(), capture_output=True,
                             text=True, timeout=10)
        self.assertEqual(res.returncode, 0, res.stderr)
        commands = help_entries(res.stdout, "commands:")
        options = help_entries(res.stdout, "options:")
        self.assertIn("serve", commands, res.stdout)
        items = self.section("COMMANDS")
        self.assertEqual(item_heads(items, "Cm"), commands,
                         "each command of baa --help is an .It Cm of COMMANDS, in its order")
        self.assertEqual(["--" + f.lstrip("-") for f in item_heads(items, "Fl")], options,
                         "each option of baa --help is an .It Fl of COMMANDS")
        for name in item_heads(items, "Cm"):
            with self.subTest(command=name):
                # Without any configuration a command stops at its check
                # (78) before it does anything; an unknown one is a usage error.
                res = subprocess.run([require_baa(), name], env=clean_env(),
                                     capture_output=True, text=True, timeout=10)
                self.assertNotIn("unknown command", res.stderr, "baa has no command %s" % name)
                self.assertEqual(res.returncode, 78, res.stderr)

    def test_endpoints_are_the_routes_of_routes_c(self):
        expected = routes()
        self.assertGreater(len(expected), 10, "routes not parsed from src/routes.c")
        listed = item_heads(self.section("ENDPOINTS"), "Li")
        missing = [r for r in expected if r not in listed]
        extra = [r for r in listed if r not in expected]
        self.assertEqual((missing, extra), ([], []),
                         "ENDPOINTS of man/baa.8: (missing, extra) against src/routes.c")


if __name__ == "__main__":
    unittest.main()
