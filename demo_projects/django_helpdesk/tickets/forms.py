"""The comment form of the ticket page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django import forms

from demo_projects.django_helpdesk.tickets.models import Comment

# Generic for the type checker only (django-stubs); Django's class is not subscriptable.
if TYPE_CHECKING:
    CommentFormBase = forms.ModelForm[Comment]
else:
    CommentFormBase = forms.ModelForm


class CommentForm(CommentFormBase):
    """`author` and `body` of a new comment; the ticket comes from the URL."""

    class Meta:
        model = Comment
        fields = ("author", "body")
