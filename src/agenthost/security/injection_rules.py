"""The prompt-injection rules: weighted regular expressions over normalised text, by family
(used by `agenthost.security.injection.analyze`)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = ["FAMILIES", "RULES", "Rule"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One pattern: its family, its weight, the regex (on normalised text) and its keys.

    `keys` are substrings of which any match must contain one (derived from the pattern's leading
    alternatives); a text containing none of them is not searched. Empty means always search.
    """

    family: str
    weight: float
    pattern: re.Pattern[str]
    keys: frozenset[str]
    lines: bool


# Building blocks, all on normalised (lower-case, single-spaced) text.
_OVERRIDE_VERB = (
    r"(?:ignore|disregard|forget|overlook|skip|neglect|discard|abandon|dismiss|override|overwrite|"
    r"bypass|ditch|scrap|erase|nullify|revoke|stop following|do not follow|don'?t follow|"
    r"no longer follow|pay no (?:attention|heed) to|set aside|throw away|put aside)"
)
_STRONG_QUALIFIER = (
    r"(?:all|any|every|previous|previously|prior|above|earlier|preceding|foregoing|former|original|"
    r"initial|old|existing|system|developer|your|its|safety|ethical|programmed|built-in|default|"
    r"other|rest of)"
)
_QUALIFIER = (
    rf"(?:{_STRONG_QUALIFIER}|the|these|those|this|that|my|of|and|or|following|given|said|"
    r"mentioned|current|content|internal|aforementioned|ai'?s|model'?s|assistant'?s)"
)
_DIRECTIVE = (
    r"(?:instructions?|instruction set|directions?|directives?|prompts?|commands?|rules?|"
    r"guidelines?|guidance|context|messages?|orders?|constraints?|restrictions?|polic(?:y|ies)|"
    r"programming|requests?|conversation|inputs?|tasks?|settings|configuration|training|"
    r"limitations?|filters?|safeguards?|guardrails?|protocols?|boundaries|data|text|content)"
)
_PROMPT_OBJECT = (
    r"(?:system (?:prompt|message|instructions?)|(?:initial|original|hidden|secret|internal|starting|"
    r"opening|underlying) (?:\w+ ){0,2}?(?:prompt|instructions|directives|configuration|message)|"
    r"pre-?prompt|initiali[sz]ation (?:string|prompt)|system_?prompt)\b"
)
_AI = (
    r"(?:ai|a\.i\.|assistant|llm|language model|chatbot|bot|model|agent|gpt|chatgpt|claude|gemini|"
    r"copilot|automated (?:\w+ )?(?:systems?|software|tools?|analysis|screening|reviewers?|"
    r"scanners?)|ai (?:systems?|models?|assistants?|agents?|reviewers?)|(?:resume|cv) "
    r"(?:screening|scanners?|parsers?))"
)
_STRONG_MODE = (
    r"(?:dan|developer|dev|god|jailbreak|jailbroken|sudo|opposite|evil|uncensored|unrestricted|"
    r"unfiltered|no[- ]limits?|chaos|unlocked|dude|stan)"
)
_MODE = rf"(?:{_STRONG_MODE}|debug|debugging|maintenance|admin|diagnostic|root|superuser|test)"


def _split_alternatives(pattern: str) -> list[str]:
    """The top-level `|` branches of a regex source."""
    branches, depth, start, i, in_class = [], 0, 0, 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            branches.append(pattern[start:i])
            start = i + 1
        i += 1
    branches.append(pattern[start:])
    return branches


def _leading_keys(pattern: str) -> set[str] | None:
    """Literal prefixes one of which every match of `pattern` starts with, or None if unknown."""
    keys: set[str] = set()
    for raw_branch in _split_alternatives(pattern):
        branch = re.sub(r"^(?:\\b|\^)+", "", raw_branch)
        if branch.startswith("(?:"):
            depth, end = 0, 0
            for end, ch in enumerate(branch):
                depth += (ch == "(") - (ch == ")")
                if depth == 0 and ch == ")" and branch[end - 1] != "\\":
                    break
            if branch[end + 1 : end + 2] in ("?", "*", "{"):
                return None
            inner = _leading_keys(branch[3:end])
            if inner is None:
                return None
            keys |= inner
            continue
        word = re.match(r"[a-z][a-z ']*[a-z]|[a-z]", branch)
        if word is None:
            return None
        quantified = branch[word.end() : word.end() + 1] in ("?", "*", "{")
        literal = word.group()[:-1] if quantified else word.group()
        if not literal:
            return None
        keys.add(literal)
    return keys


def _rule(family: str, weight: float, pattern: str, keys: str = "") -> Rule:
    """A rule; `keys` ("|"-separated) replaces the derived ones where derivation cannot see them or
    finds only short, common ones."""
    derived = set(keys.split("|")) if keys else _leading_keys(pattern)
    lines = "^" in pattern or "\\n" in pattern
    return Rule(family, weight, re.compile(pattern, re.MULTILINE), frozenset(derived or ()), lines)


_override = functools.partial(_rule, "instruction_override")
_role = functools.partial(_rule, "role_hijack")
_exfil = functools.partial(_rule, "prompt_exfiltration")
_data = functools.partial(_rule, "data_exfiltration")
_delim = functools.partial(_rule, "fake_delimiter")
_authority = functools.partial(_rule, "authority_claim")
_indirect = functools.partial(_rule, "indirect_injection")
_encoded = functools.partial(_rule, "encoded_payload")

RULES: tuple[Rule, ...] = (
    # -- instruction override ---------------------------------------------------------------------
    _override(
        1.0,
        rf"\b{_OVERRIDE_VERB} (?:{_QUALIFIER} ){{0,4}}{_STRONG_QUALIFIER} (?:{_QUALIFIER} ){{0,4}}"
        rf"{_DIRECTIVE}\b",
    ),
    _override(0.5, rf"\b{_OVERRIDE_VERB} (?:{_QUALIFIER} ){{1,4}}{_DIRECTIVE}\b"),
    _override(1.0, r"\b(?:ignore|disregard|forget) (?:all )?instructions\b"),
    _override(
        1.0,
        r"\b(?:ignore|disregard|forget) (?:all (?:of )?|everything |anything )?(?:(?:that )?(?:was |you "
        r"were |i )?(?:said|told|written|stated|given|mentioned) )?(?:the |from )?(?:above|before|"
        r"previously|earlier|so far|up to (?:now|this point))\b",
    ),
    _override(
        1.0,
        r"\bforget (?:everything|all) (?:you|that you) (?:know|were told|learned)",
    ),
    _override(
        0.8,
        r"\bnew (?:important |updated |revised |primary |real |actual |system |secret |hidden |"
        r"urgent |additional )*(?:instructions?|directives?|rules|objective|orders|mission|prompt|task)"
        r"(?:\W{0,6}(?::|\n|are\b|is\b|follow\b)|\*{2,})",
    ),
    _override(
        0.6,
        r"\byour (?:new|real|actual|true|only|primary|sole|next|updated) (?:task|job|goal|objective|"
        r"purpose|instructions?|mission|role|directive|priority|function) (?:is|are|will be|now)\b",
    ),
    _override(0.5, r"\b(?:now|then),? your (?:\w+ )?task is to\b"),
    _override(0.5, r"\bwithout (?:writing|saying|outputting|printing) anything\b"),
    _override(0.4, r"\b(?:ignore|disregard) all\b"),
    _override(
        0.5,
        r"\b(?:instead|rather),? (?:just |only |simply )?(?:say|print|output|write|respond|reply|"
        r"repeat|return|type)\b|\bjust (?:say|print|output) [\"'\u201c]",
    ),
    _override(0.3, r"\b(?:from now on|starting now|henceforth|from this point on)\b"),
    _override(
        0.6,
        r"\b(?:stop|halt|abort) (?:everything|all (?:previous |prior )?(?:tasks?|processing|"
        r"instructions))\b",
    ),
    _override(
        0.6,
        r"\b(?:do not|don'?t|never) (?:follow|obey|listen to) (?:the |your |any )?(?:previous|prior|"
        r"original|above|system|developer|earlier)\b",
    ),
    _override(
        0.6,
        r"\bregardless of (?:any |all |your |the )?(?:previous|prior|pre-?existing|earlier|original|"
        r"system|above)? ?(?:instructions?|inputs?|guidelines|rules|restrictions|programming)",
    ),
    _override(
        0.5,
        r"\b(?:supersedes?|overrides?|overrules?|takes? precedence over|superior to) (?:all |any |"
        r"the |your |what )?(?:previous|prior|earlier|came before|above|original|other)\b|\bnull "
        r"(?:and )?void\b",
    ),
    _override(
        0.8,
        r"\b(?:mistake|error|typo) (?:\w+ ){0,4}(?:gave|giving|wrote|writing) you (?:your )?"
        r"instructions\b",
    ),
    # -- role hijack and jailbreak ----------------------------------------------------------------
    _role(
        1.0,
        r"\byou are (?:now |going to |about to )?(?:be |act as |become |pretend to be |play )?"
        r"(?:dan|stan|dude|an? (?:unrestricted|unfiltered|uncensored|jailbroken|amoral|unethical|"
        r"evil|rogue|unbound|limitless|no[- ]limits?|unaligned)\b)",
    ),
    _role(
        1.0,
        r"\bdo anything now\b|\bd\.a\.n\b|\bdan mode\b",
        keys="do anything now|d.a.n|dan mode",
    ),
    _role(
        1.0,
        rf"\b{_STRONG_MODE} mode (?:is |has been )?(?:now )?(?:enabled|activated|engaged|on|unlocked)\b|"
        rf"\byou are (?:now )?(?:in|operating in|running in|entering) (?:the )?{_MODE} mode\b",
    ),
    _role(0.5, rf"\b{_MODE} mode (?:is |has been )?(?:now )?(?:enabled|activated|engaged|on)\b"),
    _role(
        0.6,
        r"\b(?:you are|u r|you're|you will be|you'll be|act as|acting as|become|named) dan\b|"
        r"\byou will (?:now )?(?:respond|answer|reply|act|behave|speak|roleplay|role-play)(?: to (?:all|"
        r"every)(?: of)?(?: my)? (?:questions?|prompts?|messages?))? as\b|\byou are going to "
        r"(?:pretend|act|play|be)\b",
    ),
    _role(
        0.5,
        r"\b(?:start|begin|prefix) (?:all |each |every )?(?:of )?your (?:responses|answers|replies|"
        r"messages|outputs)\b|\b(?:two|2) (?:separate |different |distinct )?(?:ways|manners|"
        r"responses|answers|modes|personalities)\b",
        keys="responses|answers|replies|messages|outputs|ways|manners|modes|personalities",
    ),
    _role(0.3, r"\blet'?s play a game\b|\bpersona\b|\balter ego\b"),
    _role(
        1.0,
        r"</?interaction-config>|\b(?:blocked|forbidden|banned|disallowed) (?:strings|responses|"
        r"phrases)\b",
        keys="interaction-config|blocked|forbidden|banned|disallowed",
    ),
    _role(0.5, r"\[(?:your|insert|enter) (?:prompt|question|request) here\]", keys="here]"),
    _role(
        0.5,
        rf"\b(?:enable|activate|enter|switch to|turn on|unlock|simulate)s? (?:the )?{_MODE} "
        r"(?:mode|features?|functionalit(?:y|ies))\b|\bhidden functionalit",
    ),
    _role(
        0.6,
        r"\b(?:act|behave|respond|answer|speak|reply|roleplay|role-play|pretend|simulate)s? (?:as "
        r"(?:if )?(?:you (?:are|were) )?|like |to be )(?:an? |the )?(?:dan|stan|dude|unrestricted|"
        r"unfiltered|uncensored|jailbroken|amoral|unethical|evil|rogue|unbound|limitless|no[- ]"
        r"limits?|malicious|hacker|different ai|ai without)\b",
    ),
    _role(0.3, r"\b(?:pretend|imagine) (?:that )?you (?:are|have|were|can)\b|\brole-?play"),
    _role(0.8, r"\b(?:stay|remain|keep) (?:in|in the) character\b|\bbreak(?:ing)? character\b"),
    _role(
        0.8,
        r"\b(?:not|never|no longer) (?:be )?(?:bound|restricted|limited|constrained|governed) by\b|"
        r"\bfree(?:d)? (?:from|of) (?:all |any |the )?(?:typical )?(?:confines|restrictions|rules|"
        r"constraints|limitations|guidelines|filters|censorship|ethics|morals?)\b|\bbroken free\b",
    ),
    _role(
        0.8,
        r"\b(?:without|no|free of|zero|abandon|disregard) (?:any |all )?(?:ethical|moral|safety|"
        r"content) (?:guidelines|constraints|restrictions|considerations|boundaries|limits|filters|"
        r"policies|principles)\b|\bhave no (?:restrictions|limits|limitations|filters|rules|"
        r"boundaries|ethics|morals)\b",
    ),
    _role(
        0.4,
        r"\b(?:openai|anthropic)(?:'s)? (?:content |usage )?(?:polic(?:y|ies)|guidelines|rules)",
    ),
    _role(
        0.6,
        r"\b(?:never|cannot|can'?t|won'?t|will not|must not|shall not) (?:ever )?(?:refuse|decline)\b",
    ),
    _role(
        0.5,
        r"\bwithout (?:any )?(?:warnings?|disclaimers?|censorship|refusals?|apolog(?:y|ies)|"
        r"moralizing|hesitation|restrictions|limitations)\b",
    ),
    _role(0.5, r"\bjailbr(?:eak|oken|eaking)\b"),
    _role(
        0.6,
        r"\[(?:🔓|🔒)? ?(?:jailbreak|jailbroken|classic|dan|stan|dude|normal output)\\?\]",
        keys="jailbreak|classic|dan|stan|dude|normal",
    ),
    _role(0.6, r"\bknowledge (?:is )?cut ?off in 20\d\d\b"),
    _role(
        0.5,
        r"\bno matter (?:how|what) (?:immoral|unethical|illegal|harmful|dangerous|offensive)\b|"
        r"\b(?:can|will) (?:do|say|generate) anything\b",
    ),
    _role(0.3, r"\bhypothetical(?:ly)? (?:response|scenario|world|setting)\b|\bfictional world\b"),
    # -- system prompt exfiltration ---------------------------------------------------------------
    _exfil(
        1.0,
        r"\b(?:reveal|print|show|display|output|repeat|tell|give|share|leak|dump|spell|write|paste|"
        r"list|recite|provide|return|echo|expose|disclose|translate|summari[sz]e|encode|copy|"
        r"reproduce|read|type|state|say|complete|continue|log|see|view|access|know|get|obtain|"
        rf"extract)\b(?: \S+){{0,6}}? {_PROMPT_OBJECT}",
    ),
    _exfil(
        1.0,
        r"\b(?:instructions|text|prompt|words|everything|rules) (?:that )?you (?:were|have been) "
        r"(?:given|told|provided)\b|(?:print|log|echo|write|dump)\s*\(\s*(?:self\.)?system_?prompt",
    ),
    _exfil(0.6, r"\b(?:your|the) system (?:prompt|instructions|message)\b", keys="system"),
    _exfil(0.6, r"\bbefore (?:this|the|our) conversation (?:started|began)\b"),
    _exfil(
        1.0,
        r"\b(?:first|last|opening) (?:sentence|line|words?|paragraph) of (?:your|the) (?:system prompt|"
        r"instructions|prompt|system message)\b",
    ),
    _exfil(
        0.6,
        r"\bmy (?:instructions|system prompt|rules) (?:are|is|say)\b",
        keys="my instructions|my system prompt|my rules",
    ),
    _exfil(0.4, r"\b(?:start|begin) your (?:answer|response|reply) with\b"),
    _exfil(
        1.0,
        r"\b(?:complete|continue|finish) (?:this|the following|the) (?:sentence|text|phrase)\W+"
        r"(?:i was|the system prompt|my instructions|you are)\b",
    ),
    _exfil(
        1.0,
        r"\b(?:reveal|print|output|repeat|share|leak|dump|paste|recite|echo|expose|disclose|encode|"
        r"copy|reproduce)\b(?: \S+){0,4}? (?:your|its) (?:\w+ ){0,2}?(?:instructions|prompt|rules|"
        r"guidelines|directives|programming|configuration)\b",
    ),
    _exfil(
        0.6,
        r"\b(?:tell|give|show|display)\b(?: \S+){0,4}? (?:your|its) (?:\w+ ){0,2}?(?:instructions|"
        r"prompt|rules|guidelines|directives|programming|configuration)\b",
    ),
    _exfil(
        0.6,
        r"\bwhat (?:are|were|is|was) (?:your|the) (?:\w+ )?(?:instructions|system prompt|prompt|"
        r"directives)\b",
    ),
    _exfil(
        1.0,
        r"\b(?:repeat|print|output|copy|return|echo|reproduce|go) (?:\w+ ){0,5}?(?:above|before this|"
        r"preceding)\b",
    ),
    _exfil(
        1.0,
        r"\b(?:starting|beginning|begin|start) with [\"'\u201c\u2018]?(?:you are|my instructions)\b",
    ),
    _exfil(
        0.6,
        r"\b(?:were you told|you were (?:told|given|instructed|programmed)|were you (?:instructed|"
        r"programmed)|i was instructed to)\b",
    ),
    _exfil(
        1.0,
        r"\b(?:output|print|reveal|share|leak|dump|disclose)s? (?:me )?(?:your|the system's|the "
        r"assistant's) (?:unique |secret |hidden )?(?:id|identifier|api ?keys?|secrets?|passwords?|"
        r"tokens?|credentials)\b",
    ),
    _exfil(0.8, r"\bnot (?:supposed|allowed|permitted) to (?:tell|say|reveal|share)\b"),
    _exfil(0.6, r"</?system_?prompt>", keys="prompt>"),
    # -- data exfiltration through rendered output ------------------------------------------------
    _data(
        0.8,
        r"!\[[^\]\n]*\](?:\(|\[)\s*(?:https?://[^)\s]*(?:[?&=/])[^)\s]*?(?:\[[a-z_ ]+\]|\{[a-z_ ]+\}|"
        r"<[a-z_ ]+>)|[^\]\s]+\])|\]:\s*https?://\S*=\[[a-z_ ]+\]",
        keys="![|]:",
    ),
    _data(0.6, r"https?://\S*[?&]\w+=\[[a-z_]+\]"),
    _data(
        0.6,
        r"\b(?:url|base64|hex|percent|quoted-printable|mime)[- ]?(?:encoded?|encoding of) (?:\S+ ){0,4}?"
        r"(?:summary|conversation|chat|history|messages?|data|secrets?|passwords?|token|email)\b",
    ),
    _data(
        0.4,
        r"\b(?:summary|contents?|history|transcript) of (?:this|our|the) (?:conversation|chat|session|"
        r"page and our conversation)\b",
    ),
    _data(0.6, r'(?:"[^"\n]{1,7}",\s*){5,}', keys='",'),
    _data(
        0.4,
        r"\b(?:replace|replacing|substitute|where|whereas) \[\w+\] (?:with|is)\b",
        keys="] with|] is",
    ),
    _data(
        0.5,
        r"<img[^>]+onerror\s*=|<svg[^>]*onload\s*=|<script\b|\bjavascript:",
        keys="<img|<svg|<script|javascript:",
    ),
    _data(
        0.5,
        r"\binclude (?:it |this |them |that )?(?:in|into) (?:your|the) (?:response|answer|reply|output)\b",
    ),
    _data(
        0.5,
        r"\b(?:at the end|at the beginning|at the start) of (?:your|the|each) (?:response|answer|reply)\b",
    ),
    _data(
        0.5,
        r"\b(?:repeat|say|write|print|output) (?:the )?(?:word|phrase|sequence|string)\b",
    ),
    _data(
        0.4,
        r"\b(?:it is|it's) (?:crucial|essential|critical|vital|very important|imperative) (?:that )?you\b",
    ),
    # -- fake delimiters and role labels ----------------------------------------------------------
    _delim(
        1.0,
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext|end|eot_id|start_header_id|"
        r"end_header_id|begin_of_text)\|>",
        keys="<|",
    ),
    _delim(
        0.6,
        r"\[/?inst\]|<<\s*/?sys\s*>>|"
        r"\[(?:system|admin|developer)(?: (?:message|note|request|override|instruction))?\](?!\()|"
        r"\[(?:system|admin|developer)\]\(#|\[admin request::",
        keys="inst]|<<|[system|[admin|[developer",
    ),
    _delim(
        0.6,
        r"^(?:#{1,6} ?)?(?:system|developer|admin)(?: (?:message|prompt|instructions?|note|override))?"
        r" ?:",
        keys="system|developer|admin",
    ),
    _delim(
        0.3,
        r"^(?:assistant|ai) ?: .*\n(?:.*\n){0,3}?(?:user|human) ?:",
        keys="assistant:|assistant :|ai:|ai :",
    ),
    _delim(
        0.8,
        r"<\s*/?\s*(?:system|sys|instructions?|admin|developer)\s*>|(?:\[system\]\s*){2,}",
        keys="sys|instruction|admin|developer",
    ),
    _delim(0.8, r"[:>\]]\s*(?:system|admin|developer)\s*:", keys="system|admin|developer"),
    _delim(0.4, r"^(?:user|human) ?: (?:next|now|also|and|then|please|thanks|could|can)\b"),
    _delim(
        0.4,
        r"<(?:translated|detailed|salient|brief) [a-z ]+>",
        keys="<translated|<detailed|<salient|<brief",
    ),
    _delim(0.3, r"\brepeat the following (?:sentence|text|phrase|words?)\b"),
    _delim(
        0.6,
        r"\b(?:end|beginning|start) of (?:the )?(?:session|conversation|document|user input|context|"
        r"system prompt|instructions)\b",
    ),
    _delim(
        0.6,
        r"^(?:-{2,}|={2,}|#{2,}|\*{3,}) ?(?:core|system|admin|new|legal amendment,?|important|priority)"
        r" ?(?:instructions?|amendment|message|directive)",
        keys="instruction|amendment|message|directive",
    ),
    _delim(
        0.6,
        r"\b(?:system|admin|administrator|developer|root) (?:message|notice|override|command|"
        r"instruction|request)s?\s*(?:[:!\]]|::)|\bsecure system message\b",
    ),
    # -- authority and urgency claims -------------------------------------------------------------
    _authority(
        0.6,
        r"\b(?:administrator|admin|developer|root|sudo|superuser) (?:override|access granted|"
        r"privileges?|authorization|clearance)\b|\b(?:grant|give) (?:me )?(?:temporary )?"
        r"(?:administrative|admin|root|elevated) (?:privileges|access|rights)\b",
    ),
    _authority(
        0.4,
        r"\b(?:this is (?:a|an) (?:test|drill|authori[sz]ed (?:test|request))|for (?:testing|test|"
        r"debugging|research|academic|educational|qa|quality assurance) purposes)\b|\btest mode\b|"
        r"\btest pipeline\b",
    ),
    _authority(
        0.4,
        r"\b(?:urgent|important|critical|priority|emergency)\W+(?:new )?(?:task|instructions?|"
        r"directive|notice)\b",
    ),
    _authority(
        0.5,
        r"\b(?:i am|i'm) (?:a|the|your) (?:developer|administrator|admin|creator|owner|programmer)\b",
    ),
    _authority(
        0.5,
        r"\b(?:pre-?verified|pre-?approved) by\b|\boverride (?:manual|the|all|any|previous|default|"
        r"safety)\b",
    ),
    # -- instructions aimed at an AI inside data (indirect injection) -----------------------------
    _indirect(
        0.8,
        rf"\b(?:note|message|instructions?|attention|notice|memo|hint)s? (?:to|for) (?:the |any |all )?"
        rf"{_AI}\b|\b(?:dear|hey|hello|attention),? {_AI}\b|\b(?:if|when) you are an? {_AI}\b|\b"
        rf"{_AI}s? (?:reading|processing|parsing|summari[sz]ing|analy[sz]ing) this\b",
        keys="note|message|instruction|attention|notice|memo|hint|dear|hey|hello|if |when |reading|"
        "processing|parsing|summari|analy",
    ),
    _indirect(
        1.0,
        r"\b(?:if|when) you are (?:told|asked) to (?:summari[sz]e|translate|answer|analy[sz]e|review)\b",
    ),
    _indirect(
        0.8,
        r"\b(?:if|when) (?:the )?(?:user|human|someone|anyone|you(?:'re| are)?) (?:\w+ ){0,2}?(?:asks?|"
        r"asked|requests?|questioned|told)\b[^.\n]{0,80}\b(?:respond|reply|answer|say|output|print|"
        r"report|tell|state)\b",
    ),
    _indirect(
        0.6,
        r"\b(?:do not|don'?t|never|without) (?:tell(?:ing)?|inform(?:ing)?|mention(?:ing)?|"
        r"reveal(?:ing)?|alert(?:ing)?|notify(?:ing)?|let(?:ting)?) (?:the )?(?:user|human|"
        r"recipient|reader)\b",
    ),
    _indirect(
        0.6,
        r"\b(?:hidden|invisible|white[- ]text|secret) (?:\w+ ){0,2}?(?:instructions?|metadata|"
        r"message|profile|prompt)\b|\b(?:invisible|hidden) to (?:humans|the user|users|people)\b|"
        r"\bvisible (?:only )?to (?:the )?(?:llm|ai|model|bots?)\b",
    ),
    _indirect(
        0.6,
        r"\b(?:reply|respond|answer|output) (?:with )?only (?:with )?(?:the following|this)\b|"
        r"\bfocus (?:only|exclusively|solely) on\b",
    ),
    _indirect(0.3, r"\b(?:and )?(?:absolutely )?nothing else\b", keys="nothing"),
    _indirect(
        0.8,
        r"\bif (?:asked|questioned|prompted|queried)\b[^.\n]{0,40}\b(?:respond|reply|answer|say|output|"
        r"print|report|tell|state)\b",
    ),
    # -- encoded payload hints ----------------------------------------------------------------------
    _encoded(
        0.6,
        r"\bdecode (?:\w+ ){0,5}?(?:and|then) (?:follow|execute|obey|do|run|perform|carry out|act on|"
        r"answer|respond|include)\b",
    ),
)

FAMILIES: tuple[str, ...] = (
    *dict.fromkeys(rule.family for rule in RULES),
    "hidden_text",
    "obfuscation",
)
