"""The served UI's sample data: the pages exist to show telemetry at work, not to track
experiments."""

EXPERIMENTS = [
    {"id": "1", "name": "fraud-detection", "runs": 24, "created": "2026-10-02"},
    {"id": "2", "name": "churn-forecast", "runs": 11, "created": "2026-10-19"},
    {"id": "3", "name": "support-chatbot-evals", "runs": 57, "created": "2026-11-03"},
]
RUNS = [
    {"name": "bright-owl-12", "status": "FINISHED", "accuracy": "0.931", "duration": "4m 12s"},
    {"name": "calm-fox-7", "status": "FINISHED", "accuracy": "0.918", "duration": "3m 58s"},
    {"name": "swift-lynx-3", "status": "FAILED", "accuracy": "-", "duration": "0m 41s"},
]
MODELS = [
    {"name": "fraud-classifier", "version": 7, "alias": "champion", "updated": "2026-11-20"},
    {"name": "churn-gbm", "version": 3, "alias": "challenger", "updated": "2026-11-12"},
]
PROMPTS = [
    {"name": "support-answer", "version": 4, "updated": "2026-11-22"},
    {"name": "ticket-summary", "version": 2, "updated": "2026-11-08"},
]
TABS = ("runs", "traces", "evaluation")
