"""Verify Claim: per-evidence scores, evidenceScores aggregates, tags, verifiers and branching.

Scores are checked against values worked out by hand for hand-made evidence.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from promptlab.errors import ConfigError, InvalidInputError
from promptlab.flows import (
    CallFunction,
    EmbeddingVerifier,
    ExecuteLogic,
    LexicalOverlapVerifier,
    LLMJudgeVerifier,
    Prompt,
    PromptAI,
    Search,
    SearchSpec,
    VerifyClaim,
    evidence_scores,
    send_message,
    set_field,
)
from promptlab.flows.verify import (
    default_parse_evidence,
    filter_by_tags,
    normalize_evidence,
    read_score,
    score_all,
)

CLAIM = "Refunds take five business days."
SUPPORTING = "Refunds are issued within five business days."  # 4 of 5 claim terms: 80
UNRELATED = "Our office dog is called Biscuit."  # 0 of 5
PARTIAL = "Refunds go back to the original card."  # 1 of 5 (refund): 20


# -- pure aggregation ---------------------------------------------------------------------------


def test_evidence_scores_aggregates_hand_made_scores():
    assert evidence_scores([80.0, 20.0, 0.0]) == {
        "maxScore": 80.0, "meanScore": pytest.approx(100 / 3), "minScore": 0.0, "numErrors": 0, "numScores": 3}
    assert evidence_scores([90.0, None, 30.0, None]) == {
        "maxScore": 90.0, "meanScore": 60.0, "minScore": 30.0, "numErrors": 2, "numScores": 2}
    assert evidence_scores([]) == {"maxScore": None, "meanScore": None, "minScore": None,
                                   "numErrors": 0, "numScores": 0}
    assert evidence_scores([None]) == {"maxScore": None, "meanScore": None, "minScore": None,
                                       "numErrors": 1, "numScores": 0}


def test_lexical_overlap_scores_the_share_of_claim_terms():
    verifier = LexicalOverlapVerifier()
    assert "heuristic" in verifier.name
    score, reason = verifier(CLAIM, SUPPORTING)
    assert score == 80.0 and reason == "4 of 5 claim terms in the evidence; missing: take"
    assert verifier(CLAIM, UNRELATED)[0] == 0.0
    assert verifier(CLAIM, PARTIAL)[0] == 20.0
    assert verifier(CLAIM, CLAIM)[0] == 100.0
    with pytest.raises(InvalidInputError, match="no content words"):
        verifier("it is what it is", SUPPORTING)


def test_read_score_accepts_numbers_tuples_and_dicts():
    assert read_score(55, "v") == (55.0, None)
    assert read_score((70, "ok"), "v") == (70.0, "ok")
    assert read_score({"score": 12.5, "reason": "thin"}, "v") == (12.5, "thin")
    for bad in (101, -1, "80", True, float("nan"), None):
        with pytest.raises(InvalidInputError, match="verifier 'v'"):
            read_score(bad, "v")


def test_evidence_normalization_and_tag_filtering():
    evidence = normalize_evidence(["plain", {"text": "tagged", "tags": ["policy"], "id": "d1"},
                                   {"text": "other", "tags": ["blog", "old"]}])
    assert evidence[0] == {"text": "plain", "tags": []} and evidence[1]["id"] == "d1"
    assert [e["text"] for e in filter_by_tags(evidence, ["policy", "old"])] == ["tagged", "other"]
    assert filter_by_tags(evidence, []) == evidence
    assert normalize_evidence({"evidence": ["x"]}) == [{"text": "x", "tags": []}]
    with pytest.raises(InvalidInputError, match=r"evidence\[0\] must be a string or a dict"):
        normalize_evidence([{"body": "no text key"}])
    with pytest.raises(InvalidInputError, match="tags must be a list of strings"):
        normalize_evidence([{"text": "x", "tags": "policy"}])
    with pytest.raises(InvalidInputError, match="must return a list"):
        normalize_evidence("just a string")


def test_default_evidence_comes_from_every_search_result_tagged_by_resource():
    context = {"searchResults": [
        {"resource": "kb", "results": [{"record": {"id": "a#0", "text": "A"}, "distance": 0.1}]},
        {"resource": "faq", "results": [{"record": {"id": "b#0", "text": "B"}, "distance": 0.2},
                                        {"record": {"id": "c#0", "body": "C"}, "distance": 0.3}]}]}
    assert [(e["text"], e["tags"], e["id"]) for e in default_parse_evidence(context)] == [
        ("A", ["kb"], "a#0"), ("B", ["faq"], "b#0"), ("C", ["faq"], "c#0")]


def test_score_all_counts_a_failing_piece_as_an_error():
    def picky(claim, evidence):
        if "dog" in evidence:
            raise ValueError("cannot score dogs")
        return 100.0 if evidence == claim else 10.0

    scored = asyncio.run(score_all(picky, CLAIM, normalize_evidence([CLAIM, UNRELATED, PARTIAL]), None))
    assert [p["score"] for p in scored] == [100.0, None, 10.0]
    assert scored[1]["error"] == "ValueError: cannot score dogs"
    assert evidence_scores([p["score"] for p in scored])["numErrors"] == 1


# -- the behavior -----------------------------------------------------------------------------


def verdict(context):
    v = next(iter(context["verifications"].values()))
    s = context["evidenceScores"]
    return {"actions": [send_message(f"verified={v['verified']} max={s['maxScore']} n={s['numScores']}")]}


def evidence_fn(context):
    return [{"text": SUPPORTING, "tags": ["policy"]}, {"text": UNRELATED, "tags": ["blog"]},
            {"text": PARTIAL, "tags": ["policy"]}]


def claim_flow(lab, **options):
    return lab.flows.create("v", [
        ExecuteLogic("set", rules=[set_field("session.answer", CLAIM), "verify"]),
        VerifyClaim("verify", claim="session.answer", parse_evidence=evidence_fn,
                    on_verified=verdict, on_unverified=verdict, **options),
    ])


def test_verify_claim_scores_each_piece_and_aggregates(lab):
    result = claim_flow(lab).run_turn("c1", "x")
    assert result.context["evidenceScores"] == {
        "maxScore": 80.0, "meanScore": pytest.approx(100 / 3), "minScore": 0.0, "numErrors": 0, "numScores": 3}
    check = result.context["verifications"]["verify"]
    assert check["claim"] == CLAIM and check["verified"] is True
    assert [(e["text"], e["score"]) for e in check["evidence"]] == [(SUPPORTING, 80.0), (UNRELATED, 0.0),
                                                                    (PARTIAL, 20.0)]
    assert check["evidence"][0]["reason"].startswith("4 of 5")
    assert result.answer == "verified=True max=80.0 n=3"
    [event] = result.trace.of("verify")
    assert event["data"]["scores"] == [80.0, 0.0, 20.0] and event["detail"].startswith("verified: max=80.0")


def test_evidence_tags_filter_the_evidence(lab):
    result = claim_flow(lab, evidence_tags=["blog"]).run_turn("c1", "x")
    assert result.context["evidenceScores"]["numScores"] == 1
    assert result.answer == "verified=False max=0.0 n=1"
    result = claim_flow(lab, evidence_tags=["nothing"]).run_turn("c2", "x")
    assert result.answer == "verified=False max=None n=0"  # default condition needs numScores > 0


@pytest.mark.parametrize("condition, verified", [
    ("evidenceScores.maxScore >= 80", True),
    ("evidenceScores.maxScore > 80", False),
    ("evidenceScores.meanScore >= 30 and evidenceScores.minScore >= 0", True),
    ("evidenceScores.numErrors == 0 and evidenceScores.numScores >= 4", False),
    (lambda scores: scores["minScore"] == 0.0, True),
])
def test_verification_condition_decides(lab, condition, verified):
    assert claim_flow(lab, condition=condition).run_turn("c1", "x").answer.startswith(f"verified={verified}")


def test_claim_from_a_prompt_completion_and_evidence_from_search(lab):
    lab.contexts.create("kb")
    lab.contexts.add("kb", [{"id": "r", "text": SUPPORTING}, {"id": "d", "text": UNRELATED}])

    def build(llm, context):
        return {"request": {"messages": [{"role": "user", "content": CLAIM}]}}

    flow = lab.flows.create("v", [
        Search("search", searches=[SearchSpec("kb", "customerLastMessage", top_k=2)], on_success="answer"),
        PromptAI("answer", prompts=[Prompt("answer", "sim:echo", build)], on_success="verify"),
        VerifyClaim("verify", claim="prompts.answer.completion",
                    on_verified=send_message("ok"), on_unverified=send_message("fallback")),
    ])
    result = flow.run_turn("c1", "refunds business days")
    check = result.context["verifications"]["verify"]
    assert check["claim"] == CLAIM and [e["id"] for e in check["evidence"]] == ["r#0"]
    assert check["evidence"][0]["tags"] == ["kb"] and check["evidence"][0]["score"] == 80.0
    assert result.answer == "ok" and result.location == "search"  # not a resting point: next turn restarts


def test_unverified_claim_falls_back(lab):
    flow = lab.flows.create("v", [
        ExecuteLogic("set", rules=[set_field("session.answer", "Pluto is a planet with oceans."), "verify"]),
        VerifyClaim("verify", claim="botSession.answer", parse_evidence=evidence_fn,
                    on_verified=send_message("verified"), on_unverified=send_message("Let me check with a human.")),
    ])
    assert flow.run_turn("c1", "x").answer == "Let me check with a human."


def test_failing_pieces_are_counted_in_num_errors(lab):
    def flaky(claim, evidence):
        if "dog" in evidence:
            raise RuntimeError("model refused")
        return 90.0

    result = claim_flow(lab, verifier=flaky).run_turn("c1", "x")
    assert result.context["evidenceScores"] == {"maxScore": 90.0, "meanScore": 90.0, "minScore": 90.0,
                                                "numErrors": 1, "numScores": 2}
    errors = [e["error"] for e in result.context["verifications"]["verify"]["evidence"]]
    assert errors == [None, "RuntimeError: model refused", None]


def test_missing_claim_and_bad_evidence_run_on_error(lab):
    def report(context):
        return {"actions": [send_message(context["error"]["type"])]}

    no_claim = lab.flows.create("a", [VerifyClaim("verify", claim="session.answer", on_error=report)])
    assert no_claim.run_turn("c1", "x").answer == "claim"

    def bad_evidence(context):
        return 42

    bad = lab.flows.create("b", [
        ExecuteLogic("set", rules=[set_field("session.answer", CLAIM), "verify"]),
        VerifyClaim("verify", claim="session.answer", parse_evidence=bad_evidence, on_error=report)])
    assert bad.run_turn("c1", "x").answer == "function"

    none_compare = lab.flows.create("c", [
        ExecuteLogic("set", rules=[set_field("session.answer", CLAIM), "verify"]),
        VerifyClaim("verify", claim="session.answer", parse_evidence=lambda context: [],
                    condition="evidenceScores.maxScore > 50", on_error=report)])
    assert none_compare.run_turn("c1", "x").answer == "condition"

    unhandled = lab.flows.create("d", [VerifyClaim("verify", claim="session.answer")])
    with pytest.raises(InvalidInputError, match="no claim text at context field 'session.answer'"):
        unhandled.run_turn("c1", "x")


def test_llm_judge_verifier_through_the_simulator_is_logged(lab):
    result = claim_flow(lab, verifier=LLMJudgeVerifier(model="sim:judge")).run_turn("c1", "x")
    scores = [e["score"] for e in result.context["verifications"]["verify"]["evidence"]]
    # sim:judge scores the share of claim terms found in the evidence (its own stemming)
    assert scores[0] > scores[2] > scores[1] == 0.0
    assert result.context["evidenceScores"]["numScores"] == 3
    judged = lab.generations.list(model="sim:judge")
    assert len(judged) == 3 and set(result.generations) == {g.guid for g in judged}
    assert all(g.metadata["verifier"] == "llm-judge" and g.metadata["behavior"] == "verify" for g in judged)
    assert "Claim:\nRefunds take five business days." in judged[0].messages[0]["content"]


def test_llm_judge_verifier_through_a_judge_action(lab):
    lab.actions.create("support-judge", model="sim:judge",
                       prompt="Rate support 0-100 as JSON.\n\nClaim:\n{{claim}}\n\nEvidence:\n{{evidence}}")
    result = claim_flow(lab, verifier=LLMJudgeVerifier(action="support-judge")).run_turn("c1", "x")
    assert result.context["evidenceScores"]["numScores"] == 3
    judged = lab.generations.list(action="support-judge")
    assert len(judged) == 3 and all(g.metadata["flow"] == "v" for g in judged)
    with pytest.raises(ConfigError, match="not both"):
        LLMJudgeVerifier(model="sim:judge", action="support-judge")


class HashEmbedder:
    """A deterministic bag-of-words embedder implementing promptlab's Embedder protocol."""

    model_id = "hash-bow"

    def embed(self, texts):
        rows = []
        for text in texts:
            v = np.zeros(64, dtype=np.float32)
            for word in text.lower().replace(".", "").split():
                v[sum(map(ord, word)) % 64] += 1.0
            rows.append(v / max(np.linalg.norm(v), 1e-12))
        return np.vstack(rows)


def test_embedding_verifier_scores_cosine_similarity(lab):
    embedder = HashEmbedder()
    result = claim_flow(lab, verifier=EmbeddingVerifier(embedder=embedder)).run_turn("c1", "x")
    vectors = embedder.embed([CLAIM, SUPPORTING, UNRELATED, PARTIAL])
    expected = [round(max(0.0, float(vectors[0] @ v)) * 100, 2) for v in vectors[1:]]
    scores = [e["score"] for e in result.context["verifications"]["verify"]["evidence"]]
    assert scores == expected and scores[0] > scores[2]


def test_embedding_verifier_with_minilm_ranks_support_above_unrelated(lab):
    from promptlab.contexts.embeddings import embeddings_available

    if not embeddings_available():
        pytest.skip("the embeddings extra is not installed")
    result = claim_flow(lab, verifier=EmbeddingVerifier()).run_turn("c1", "x")
    scores = [e["score"] for e in result.context["verifications"]["verify"]["evidence"]]
    assert scores[0] > scores[1] and all(0 <= s <= 100 for s in scores)
    assert not any(math.isnan(s) for s in scores)


def test_verify_claim_definition_is_validated():
    with pytest.raises(ConfigError, match="evidence_tags must be a list"):
        VerifyClaim("v", claim="session.a", evidence_tags="policy")
    with pytest.raises(ConfigError, match="a verifier must be"):
        VerifyClaim("v", claim="session.a", verifier=42)
    with pytest.raises(ConfigError, match="does not parse"):
        VerifyClaim("v", claim="session.a", condition="evidenceScores.maxScore >")
    with pytest.raises(ConfigError, match="has parameter 'ctx'"):
        VerifyClaim("v", claim="session.a", parse_evidence=lambda ctx: [])


def test_async_verifier_functions_are_awaited(lab):
    async def slow_verifier(claim, evidence):
        await asyncio.sleep(0)
        return {"score": 64, "reason": "async"}

    result = claim_flow(lab, verifier=slow_verifier).run_turn("c1", "x")
    assert result.context["evidenceScores"]["maxScore"] == 64.0
    assert {e["reason"] for e in result.context["verifications"]["verify"]["evidence"]} == {"async"}


def test_evidence_and_scores_are_per_turn(lab):
    flow = lab.flows.create("v", [
        ExecuteLogic("set", rules=[set_field("session.answer", CLAIM), "verify"]),
        VerifyClaim("verify", claim="session.answer", parse_evidence=evidence_fn, on_verified="peek",
                    on_unverified="peek"),
        CallFunction("peek", function=lambda context: None),
    ])
    flow.run_turn("c1", "x")
    assert "evidenceScores" not in flow.state("c1")
    second = flow.run_turn("c1", "y")
    assert list(second.context["verifications"]) == ["verify"]
