"""The client portal: sign in, set a password from the welcome email, see workspaces and payments."""

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from core.signing import SignatureError, signature_verify

from .forms import EmailAuthenticationForm, ForgotPasswordForm
from .password_reset import portal_password_reset_request
from .selectors import client_for_user, payments_for_client, services_for_client, workspaces_for_user
from .services import workspace_callback_record


class AuthenticatedHttpRequest(HttpRequest):
    """A request in a @login_required view (django-stubs' pattern): its user is signed in."""

    user: User


class PortalLoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True
    next_page = reverse_lazy("portal:home")  # type: ignore[assignment]  # a lazy str; the stubs want str


class PortalLogoutView(auth_views.LogoutView):
    next_page = reverse_lazy("portal:login")  # type: ignore[assignment]  # a lazy str; the stubs want str


class SetPasswordView(auth_views.PasswordResetConfirmView):
    """The welcome email's link: set a password once, then land signed in on the portal."""

    template_name = "portal/set_password.html"
    post_reset_login = True
    # Several backends are configured (django-axes first); the portal's login is the model backend.
    post_reset_login_backend = "django.contrib.auth.backends.ModelBackend"
    success_url = reverse_lazy("portal:home")

    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(self.request, "Your password is set and you are signed in.")
        return response


def forgot_password(request: HttpRequest) -> HttpResponse:
    """Ask for a new set-password link; the answer is the same whether or not the address has an
    account, and whether or not the rate limit held the email back."""
    form = ForgotPasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        portal_password_reset_request(
            email=form.cleaned_data["email"], ip_address=request.META.get("REMOTE_ADDR")
        )
        return redirect("portal:forgot_password_sent")
    return render(request, "portal/forgot_password.html", {"form": form})


def forgot_password_sent(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/forgot_password_sent.html")


@csrf_exempt
@require_POST
def provisioning_callback(request: HttpRequest) -> HttpResponse:
    """An asynchronous provisioning backend reports a workspace ready or failed (signed like
    Stripe's webhooks with PROVISIONING_SECRET; replay window 300 s). 400 for anything else."""
    if not settings.PROVISIONING_SECRET:
        return HttpResponseBadRequest("Rejected: no provisioning callbacks are configured")
    try:
        signature_verify(
            request.body,
            request.headers.get("Provisioning-Signature", ""),
            secret=settings.PROVISIONING_SECRET,
        )
        data = json.loads(request.body)
        external_id, status = str(data["id"]), data["status"]
    except (SignatureError, ValueError, KeyError, TypeError) as exc:
        return HttpResponseBadRequest(f"Rejected: {exc}")
    if status not in ("ready", "failed"):
        return HttpResponseBadRequest("Rejected: status must be ready or failed")
    workspace = workspace_callback_record(
        external_id=external_id,
        status=status,
        url=str(data.get("url") or ""),
        error=str(data.get("error") or ""),
    )
    if workspace is None:
        return HttpResponseBadRequest("Rejected: unknown workspace id")
    return JsonResponse({"id": external_id, "workspace": workspace.id, "status": workspace.status})


@login_required
def home(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The client's workspaces, what they ordered and what they paid."""
    client = client_for_user(user=request.user)
    if client is None:
        return render(request, "portal/no_client.html", status=404)
    context = {
        "client": client,
        "workspaces": workspaces_for_user(user=request.user),
        "services": services_for_client(client=client),
        "payments": payments_for_client(client=client),
    }
    return render(request, "portal/home.html", context)


@login_required
def workspace(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """One workspace's dashboard; 404 unless it belongs to the signed-in client."""
    workspace = get_object_or_404(workspaces_for_user(user=request.user), pk=pk)
    return render(request, "portal/workspace.html", {"workspace": workspace})
