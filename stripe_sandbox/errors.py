"""Stripe-shaped API errors (`{"error": {...}}` bodies with Stripe's status codes)."""

REQUEST_LOG_URL = "https://dashboard.stripe.com/test/logs/{request_id}"


class StripeApiError(Exception):
    """An error the sandbox answers with, rendered exactly like Stripe's error object."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self, request_id: str) -> dict:
        """Return the JSON body Stripe sends for this error."""
        error = {"message": self.message, "type": self.error_type}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        error["request_log_url"] = REQUEST_LOG_URL.format(request_id=request_id)
        return {"error": error}


def unknown_parameter(name: str) -> StripeApiError:
    """400 for a parameter the endpoint does not accept."""
    return StripeApiError(400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name)


def invalid_parameter(name: str, message: str, code: str | None = None) -> StripeApiError:
    """400 for a parameter with a bad value."""
    return StripeApiError(400, message, code=code, param=name)


def missing_parameter(name: str) -> StripeApiError:
    """400 for a required parameter that was not sent."""
    return StripeApiError(400, f"Missing required param: {name}.", code="parameter_missing", param=name)


def resource_missing(object_name: str, object_id: str, hint: str = "", param: str = "id") -> StripeApiError:
    """404 for an id the store does not hold (`No such checkout.session: 'cs_…'`)."""
    return StripeApiError(
        404,
        f"No such {object_name}: '{object_id}'{hint}",
        code="resource_missing",
        param=param,
    )


def unrecognized_url(method: str, path: str) -> StripeApiError:
    """404 for a route Stripe does not have."""
    return StripeApiError(
        404,
        f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
        "or we can help at https://support.stripe.com/.",
    )


def not_expandable(path: str) -> StripeApiError:
    """400 when `expand[]` names a field that cannot be expanded."""
    return StripeApiError(400, f"This property cannot be expanded ({path}).", param="expand")
