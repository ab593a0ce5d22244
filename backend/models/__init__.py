"""SQLModel tables, one module per entity family; importing this package registers every table."""

from backend.models.admin import AppSetting, SystemSample
from backend.models.audit import AuditEvent
from backend.models.auth import ApiToken, AuthSession, RefreshToken
from backend.models.chat import Conversation, Message
from backend.models.compare import CompareBatch, CompareResult, CompareRun, CompareVote
from backend.models.dataset import Dataset, DatasetVersion, Upload
from backend.models.deployment import Deployment
from backend.models.prompt import Prompt, PromptVersion
from backend.models.provider import Provider, ProviderModel, UsageRecord
from backend.models.training import TrainingCheckpoint, TrainingJob, TrainingMetric
from backend.models.user import Role, User

__all__ = [
    "ApiToken", "AppSetting", "AuditEvent", "AuthSession", "CompareBatch", "CompareResult", "CompareRun",
    "CompareVote", "Conversation", "Dataset", "DatasetVersion", "Deployment", "Message", "Prompt", "PromptVersion",
    "Provider", "ProviderModel", "RefreshToken", "Role", "SystemSample", "TrainingCheckpoint",
    "TrainingJob", "TrainingMetric", "Upload", "UsageRecord", "User",
]
